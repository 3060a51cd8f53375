"""The project's own error types: everything a user can cause ends in one of these, with a message that says
what was wrong and what is allowed. The CLI turns them into one line and exit code 2; the TUI shows them in place.
"""


class Bert2Error(Exception):
    """Base class of every error a user can cause (bad input, missing files, wrong task)."""


class DataError(Bert2Error):
    """A corpus or dataset that cannot be read: missing path, empty file, undecodable bytes, offline hub."""


class TokenizerError(Bert2Error):
    """A tokenizer that cannot be loaded or is unusable (e.g. an implausibly small vocabulary)."""


class CheckpointError(Bert2Error):
    """A checkpoint that is missing, incomplete, corrupt, or does not match the request."""


class InputError(Bert2Error):
    """Inference input the model cannot answer: empty text, no [MASK], too long, wrong task."""


class TrainingError(Bert2Error):
    """Training cannot go on: non-finite loss, unwritable checkpoint directory, full disk."""


class PruningError(Bert2Error):
    """Head pruning cannot be done as asked: too many heads, a layer left empty, a task it does not support."""
