"""Recording files: the readers of every file format a station can replay, the one Parquet
layout rigwatch writes (schema, metadata, encodings), the recordings directory's conventions,
listing, range queries and export.

This package sits below acquisition, the pipeline and the fleet, and imports none of them: a
recording can be read, listed and queried without a running station.

- :mod:`~rigwatch.recordings.readers`: ``.npz``, WAV, Parquet and HDF5 files into memory;
- :mod:`~rigwatch.recordings.layout`: the Parquet layout and its metadata reader and writer;
- :mod:`~rigwatch.recordings.files`: file names, work files, atomic writes;
- :mod:`~rigwatch.recordings.catalog`: listing a directory, resolving client-given names;
- :mod:`~rigwatch.recordings.query`: time ranges with min/max decimation;
- :mod:`~rigwatch.recordings.export`: CSV and Parquet export.
"""
