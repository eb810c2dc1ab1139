#!/usr/bin/env python3
"""Reads a weir dataset with DuckDB and pyarrow the way their users would, and prints what each
saw as one JSON object: {"duckdb": {"columns": [[name, type], ...], "rows": N},
"pyarrow": {...}}.

The partition columns and their types come from the dataset's `_dataset.json` (weir's declared
layout): DuckDB gets them as `hive_types`, pyarrow as its hive partitioning schema. Run by the
data-fidelity tests of weir-cli (`.ci/run` installs duckdb and pyarrow); usage:
    python3 scripts/interop_read.py DATASET_DIR
"""
import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

DUCK = {"Int64": "BIGINT", "Int32": "INTEGER", "Utf8": "VARCHAR", "Float64": "DOUBLE",
        "Date32": "DATE", "Boolean": "BOOLEAN"}
ARROW = {"Int64": pa.int64(), "Int32": pa.int32(), "Utf8": pa.string(), "Float64": pa.float64(),
         "Date32": pa.date32(), "Boolean": pa.bool_()}


def main(root):
    with open(f"{root}/_dataset.json") as f:
        layout = json.load(f)
    parts = [(c["name"], c["type"]) for c in layout["partition_columns"]]
    depth = "/".join("*" for _ in parts)
    files = f"{root}/{depth}/*.parquet"
    hive_types = ", ".join(f"'{n}': '{DUCK[t]}'" for n, t in parts)
    con = duckdb.connect()
    rel = con.sql(
        f"SELECT * FROM read_parquet('{files}', hive_partitioning = true, "
        f"hive_types = {{{hive_types}}})"
    )
    duck = {
        "columns": [[n, str(t)] for n, t in zip(rel.columns, rel.types)],
        "rows": rel.count("*").fetchall()[0][0],
    }
    partitioning = ds.partitioning(pa.schema([(n, ARROW[t]) for n, t in parts]), flavor="hive")
    table = ds.dataset(
        root, format="parquet", partitioning=partitioning, ignore_prefixes=["_", "."]
    ).to_table()
    arrow = {
        "columns": [[f.name, str(f.type)] for f in table.schema],
        "rows": table.num_rows,
    }
    print(json.dumps({"duckdb": duck, "pyarrow": arrow}))


if __name__ == "__main__":
    main(sys.argv[1])
