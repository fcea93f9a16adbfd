"""``python -m recommender`` runs the command line."""

from recommender.cli import app

if __name__ == "__main__":
    app(prog_name="recommender")
