"""Converters of raw files into the Parquet shards mtlab's readers stream (`mtlab.data.funnel_shards`):
Ali-CCP's and AliExpress's published files (`aliccp`, `aliexpress`), on one columnar toolkit
(`columnar`: CSV blocks read in parallel, damaged rows counted and reported, vocabularies, atomic
shard writing). Each converter checks its raw files, writes a manifest with their checksums, and is
run by `python -m mtlab.data prepare NAME --raw DIR`."""
