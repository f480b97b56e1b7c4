"""`python -m udfcollection` is the same as the `kapudf` command."""

from udfcollection.entry import main

if __name__ == "__main__":
    main()
