"""``python -m recommender`` runs the command line."""

from recommender.cli import main

if __name__ == "__main__":
    main()
