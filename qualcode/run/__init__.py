"""Stage 3, run: a coding run. Planning which files are new or changed, reading and suggesting them in worker
processes (local or Dask), Parquet shards, and merging the results into the project database.
"""
