"""Files -> HDF5 shards: FASTA, bigWig, segmentation BEDs and labels to the layout of data/schema.py."""
