"""Extra ``da-toolkit`` subcommands, one module each with ``main(argv: list[str]) -> int``."""
