"""What the endpoint API (`autoscaler.adapters.api`) allows each caller, apart from the API itself.

Plain data with no imports beyond the standard library, so that `egs api --help` can show the
defaults without loading FastAPI, the Kubernetes client or the decide step.
"""

from __future__ import annotations

from dataclasses import dataclass

CAPACITY_TTL_S = 10.0
"""How long the endpoint API answers from one capacity before it builds the next from the cluster (in
the background; before answering once it is twice this old): the cluster's changes (a node joined, a
replica started) show in 201/202 within about this long."""

REMADE_HOLD_LOOPS = 3
"""How many of the controller's intervals (`eta.step_s`) after an answer was re-made its earlier answers' GPUs stay
held (`autoscaler.admission.REMADE_ANNOTATION`): a loop that listed it before the re-make writes its workload
within its own time (a slow loop takes longer than one interval: churn under load, 1.4 to 2), and its pods are bound
after that; only a bound pod shows every view where it went."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request, and all unauthenticated requests together, may cost the API."""

    max_body_bytes: int = 64 * 1024
    """Largest request body read (default 64 KiB): the largest valid endpoint request, every field
    at its maximum length, is under 4 KiB. Larger bodies are refused with 413 before they are read,
    before authentication, so a 300 MB body costs neither memory nor a TokenReview."""
    review_ttl_s: float = 10.0
    """How long a TokenReview or SubjectAccessReview that said yes is reused (kube-apiserver's own
    webhook authenticator and authoriser keep theirs 2 min and 5 min)."""
    denial_ttl_s: float = 2.0
    """How long a no is reused: shorter, so that a new grant or token takes effect within seconds."""
    cached_answers: int = 10_000
    """Most TokenReview (and, apart, SubjectAccessReview) answers kept; beyond it the least recently
    used goes. Keyed by the SHA-256 of the token, never the token itself: ~200 bytes each, 2 MB in all."""
    reviews_per_s: float = 20.0
    """TokenReviews per second for tokens not in the cache, all callers together (default 20): a
    flood of made-up tokens costs the API server at most this, and is answered 429 beyond it.
    Tokens already reviewed keep being served from the cache meanwhile."""
    review_burst: int = 100
    """TokenReviews allowed at once before `reviews_per_s` applies (a restart's returning callers)."""
    max_connections: int = 512
    """Connections served at once (uvicorn's `limit_concurrency`); beyond it a request is answered 503
    at once. With `max_body_bytes`, this bounds what bodies in flight can hold: 512 x 64 KiB = 32 MiB."""
    token_audiences: tuple[str, ...] = ()
    """Audiences a token must be issued for (TokenReview `spec.audiences`); empty: the API server's own."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "cached_answers", "review_burst", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("review_ttl_s", "denial_ttl_s", "reviews_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, got {getattr(self, name)}")
