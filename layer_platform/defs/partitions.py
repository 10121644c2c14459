"""One dynamic partition per accepted scan, keyed by its ``scan_id``."""

import dagster as dg

SCANS = "scans"
scan_partitions = dg.DynamicPartitionsDefinition(name=SCANS)
