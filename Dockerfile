# `ragcun serve` for docker-compose.yml (profile "serve"): the CPU build of torch first, then ragcun.
FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY ragcun ragcun
COPY training training
COPY migrations migrations
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["ragcun", "serve", "--host", "0.0.0.0", "--port", "8000"]
