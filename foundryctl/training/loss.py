"""Cross-entropy through the LM head without holding the logits.

The head maps each labelled position to vocabulary-sized logits (49,152 floats a position for
SmolLM2): kept for backward, they dominate a step's memory. Here the head runs on chunks of
positions; each chunk's loss and its gradient with respect to the hidden states (and, when the
head trains, its weight) are computed in the forward pass and the logits are dropped at once.
Backward only scales the stored gradients. Same arithmetic as logits + cross_entropy (the
softmax gradient is computed exactly once either way), memory O(chunk x vocabulary).
"""

from __future__ import annotations

from typing import Any

CHUNK = 1024  # positions per head call


def fused_head_loss(hidden: Any, weight: Any, bias: Any, targets: Any) -> tuple[Any, Any]:
    """(summed cross-entropy, number of correct argmax predictions) of `hidden @ weight.T + bias`."""
    return _FusedHeadLoss.apply(hidden, weight, bias, targets)


def _function() -> Any:
    import torch
    import torch.nn.functional as F

    class FusedHeadLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, bias: Any, targets: Any) -> tuple[Any, Any]:
            grad_hidden = torch.empty_like(hidden) if hidden.requires_grad else None
            grad_weight = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
            grad_bias = (torch.zeros_like(bias, dtype=torch.float32)
                         if bias is not None and bias.requires_grad else None)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            correct = torch.zeros((), dtype=torch.long, device=hidden.device)
            for start in range(0, hidden.shape[0], CHUNK):
                part = hidden[start:start + CHUNK]
                wanted = targets[start:start + CHUNK]
                logits = F.linear(part, weight, bias).float()
                total += F.cross_entropy(logits, wanted, reduction="sum")
                correct += (logits.argmax(dim=-1) == wanted).sum()
                if grad_hidden is None and grad_weight is None and grad_bias is None:
                    continue
                # d(sum CE)/d(logits) = softmax - one_hot, computed in place over the logits.
                probabilities = logits.softmax(dim=-1)
                probabilities[torch.arange(wanted.shape[0], device=wanted.device), wanted] -= 1.0
                delta = probabilities.to(part.dtype)
                if grad_hidden is not None:
                    grad_hidden[start:start + CHUNK] = delta @ weight
                if grad_weight is not None:
                    grad_weight += (delta.t() @ part).float()
                if grad_bias is not None:
                    grad_bias += delta.sum(dim=0).float()
            ctx.save_for_backward(*(t for t in (grad_hidden, grad_weight, grad_bias) if t is not None))
            ctx.have = (grad_hidden is not None, grad_weight is not None, grad_bias is not None)
            ctx.weight_dtype = weight.dtype
            ctx.mark_non_differentiable(correct)
            return total, correct

        @staticmethod
        def backward(ctx: Any, grad_total: Any, _grad_correct: Any) -> tuple[Any, ...]:
            saved = iter(ctx.saved_tensors)
            grad_hidden, grad_weight, grad_bias = (next(saved) if have else None for have in ctx.have)
            return (grad_hidden * grad_total.to(grad_hidden.dtype) if grad_hidden is not None else None,
                    (grad_weight * grad_total).to(ctx.weight_dtype) if grad_weight is not None else None,
                    grad_bias * grad_total if grad_bias is not None else None,
                    None)

    return FusedHeadLoss


class _Lazy:
    """Builds the autograd Function on first use, so importing this module needs no torch."""

    _fn: Any = None

    def apply(self, *args: Any) -> Any:
        if _Lazy._fn is None:
            _Lazy._fn = _function()
        return _Lazy._fn.apply(*args)


_FusedHeadLoss = _Lazy()
