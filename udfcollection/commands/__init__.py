"""One module per `kapudf` subcommand (or pair of closely related ones)."""
