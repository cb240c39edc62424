"""Kernels on chunked arrays: a call with Dask arrays becomes a lazy Dask computation.

split.py cuts a kernel's IR into steps that each run on one block of the arguments (compiled
like any kernel), graph.py lays them out as Dask tasks, and combine.nbx holds the kernels that
merge the blocks' partial reductions.
"""
