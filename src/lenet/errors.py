"""The one exception type for errors a user can cause; the CLI turns it into a one-line message."""


class LenetError(Exception):
    """A problem with the user's input, files or settings; the message says what to do."""


class ImageTooLarge(LenetError):
    """A picture, or a body holding one, over the size limit (the server answers 413)."""
