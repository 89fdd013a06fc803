"""The one exception type for errors a user can cause; the CLI turns it into a one-line message."""


class LenetError(Exception):
    """A problem with the user's input, files or settings; the message says what to do."""


class ImageTooLarge(LenetError):
    """A picture, or a body holding one, over the size limit (the server answers 413)."""


class Declined(LenetError):
    """A picture lenet answers without the network: VERDICT (lenet.decline) says why."""
    verdict = ""


class NoInk(Declined):
    """The picture is blank, or its ink too faint to tell from the paper."""
    verdict = "no ink"


class SeveralDigits(Declined):
    """The picture holds a number, given to single-digit prediction (`--number` reads it)."""
    verdict = "several digits"
