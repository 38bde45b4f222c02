"""The command-line tools' logging default: warnings and errors only. Orbax logs every save and
restore at INFO through absl, which buries a tool's own output; `-v 0` (or any --verbosity) on
the command line brings those lines back."""
from absl import flags, logging


def quiet_by_default() -> None:
    # `present`, not `using_default_value`: absl's app.run itself moves verbosity off its default
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
