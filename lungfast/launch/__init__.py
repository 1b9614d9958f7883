"""`lungfast run EXP --on slurm|local`: an experiment's missing runs as one task each, through submitit.

prepare (splits, tile stores, embeddings: once, here) -> one array per resource set (`[slurm]`) -> a merge
(leaderboard, report) once every task has ended. The runs themselves are `lungfast run EXP --only J`, so a task
resumes a killed run and takes the same locks as any other `lungfast run`.
"""
