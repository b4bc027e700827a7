"""``python -m movierec``: the command line (also what ``torchrun -m movierec train ...`` runs)."""

from movierec.cli import main

main()
