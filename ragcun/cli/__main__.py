from ragcun.cli import cli

cli(prog_name="ragcun")
