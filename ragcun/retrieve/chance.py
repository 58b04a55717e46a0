"""Label-free scores of an adapted collection: "closer than chance" p-values and the out-of-domain flag.

A collection served by an adapted model (:data:`ADAPTED_HEAD_KINDS`) has
embeddings fitted to follow N(0, I_k); :mod:`ragcun.model.gaussian_law` gives the law of the squared
distance from a query to an *unrelated* document under it. For a ``unit-linear-unit`` head every
embedding lies on the sphere of radius √k (where N(0, I_k) concentrates), and the law is exact
there: for independent uniform directions, (1 + cos θ)/2 ~ Beta((k − 1)/2, (k − 1)/2), and
‖q − d‖² = 2k(1 − cos θ). Either way a hit's ``p_value`` is Šidák-corrected for the n documents
of the collection: the chance that the nearest of n unrelated documents lands at least this
close. Small means closer than chance; ``ragcun ask`` abstains when no hit is below
:attr:`ragcun.settings.Settings.chance_threshold`.

The out-of-domain flag asks the same law about the query itself: a query whose nearest passage
is no closer than the nearest of n unrelated ones (the top hit's p-value at least the threshold)
lies where the collection has no mass. The other candidate, the query's norm under the fitted law
(χ²_k before the final projection onto the sphere), was measured and rejected: on ADI adapted by
the default recipe, ADI's own queries have a *smaller* squared norm per axis (median 0.58) than its
documents (0.98) and than SciFact's queries sent to it (0.86), so a χ² tail test flags the
collection's own queries and passes the foreign ones. The nearest-passage test flags 34 % of ADI's
queries, 94 % of SciFact's and both off-topic questions tried.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ragcun.settings import DEFAULT_CHANCE_THRESHOLD

# Head kinds the ``adapt`` recipe fits: their outputs are meant to follow N(0, I_k) on their collection.
ADAPTED_HEAD_KINDS = ("unit-linear", "unit-linear-unit", "unit-linear-unit-query")


@dataclass(frozen=True)
class ChanceLaw:
    """The null law of ``documents`` embeddings of width ``dim`` (on the √dim sphere if ``sphere``)."""

    dim: int
    documents: int
    sphere: bool

    @classmethod
    def of(cls, embedder, documents: int) -> ChanceLaw | None:
        """The law of a collection of ``documents`` points built by ``embedder``; ``None`` unless it is adapted."""
        kind = getattr(getattr(embedder, "head_spec", None), "kind", None)
        if kind not in ADAPTED_HEAD_KINDS or documents < 1:
            return None
        return cls(embedder.dim, documents, kind != "unit-linear")

    def pair_p_values(self, sq_distances: np.ndarray, query_sq_norm: float) -> np.ndarray:
        """P(‖q − d‖² ≤ s) for one unrelated document d."""
        from scipy.stats import beta

        from ragcun.model.gaussian_law import chance_p_values

        s = np.asarray(sq_distances, dtype=np.float64)
        if self.sphere:
            shape = (self.dim - 1) / 2.0
            return beta.sf(np.clip(1.0 - s / (4.0 * self.dim), 0.0, 1.0), shape, shape)
        return chance_p_values(s, self.dim, query_sq_norm)

    def p_values(self, distances: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Each hit's chance that the nearest of the collection's unrelated documents is at least as close."""
        from ragcun.model.gaussian_law import best_of_n_p_value

        query_sq_norm = float(np.square(np.asarray(query, dtype=np.float64)).sum())
        pair = self.pair_p_values(np.square(np.asarray(distances, dtype=np.float64)), query_sq_norm)
        return best_of_n_p_value(pair, self.documents)

    def out_of_domain(self, top_p_value: float | None, threshold: float = DEFAULT_CHANCE_THRESHOLD) -> bool | None:
        """Whether the query's nearest passage is no closer than chance (``None`` without hits)."""
        return None if top_p_value is None else bool(top_p_value >= threshold)
