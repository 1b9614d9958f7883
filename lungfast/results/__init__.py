"""Stage 3, results: where every file of an experiment lives, the run record (manifest), test evaluation,
saliency, statistics, and the one summary that the leaderboard, the report and export all read."""
