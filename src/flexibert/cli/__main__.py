"""``python -m flexibert.cli`` runs the command line."""

from flexibert.cli import main

main()
