"""Chat-completion datasets: streaming validation, statistics, token counts and splits."""

from foundryctl.datasets.report import CATEGORIES, DatasetReport, Distribution, Problem, SplitSummary
from foundryctl.datasets.split import SplitPart, write_split
from foundryctl.datasets.tokens import ApproximateCounter, TokenCounter, TokenizerCounter, load_counter
from foundryctl.datasets.validator import (
    MAX_FILE_BYTES,
    MIN_TRAINING_EXAMPLES,
    RECOMMENDED_EXAMPLES,
    ValidationOptions,
    validate_dataset,
)

__all__ = ["CATEGORIES", "MAX_FILE_BYTES", "MIN_TRAINING_EXAMPLES", "RECOMMENDED_EXAMPLES",
           "ApproximateCounter", "DatasetReport", "Distribution", "Problem", "SplitPart",
           "SplitSummary", "TokenCounter", "TokenizerCounter", "ValidationOptions", "load_counter",
           "validate_dataset", "write_split"]
