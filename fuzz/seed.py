#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/corpus/TARGET/ (run from the repository root,
then `cargo fuzz cmin TARGET` keeps the ones that add coverage).

Seeds come from tests/fixtures (only the first bytes of the large files: a seed the size of a
manifest would make every run slower) and from the formats' examples in docs/integrations.md,
plus hand-made cases for edges the fixtures lack. Each target's first input byte(s) choose how
the rest is split (see fuzz/fuzz_targets/), so every seed starts with them.
"""

import hashlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def fixtures():
    for folder in sorted((ROOT / "tests" / "fixtures").iterdir()):
        for name in ("manifest.json", "run_results.json"):
            path = folder / name
            if path.is_file():
                yield path.read_bytes()


JSON = [
    (
        b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",'
        b' "invocation_id": "87cd", "env": {"A": "b"}}, "results": []}'
    ),
    b'{"metadata": {"invocation_id": null, "invocation_id": "x"}}',
    b'{"nodes": {}, "metadata": {}}',
    b'{"metadata": {"env": {}}, "metadata": {"invocation_id": "c7"}}',
    b' \n\t[1, -0.5e+10, 1E400, true, false, null, "a\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9"]',
    b'{"s": "\\ud83d\\ude00 \\ud800 caf\xc3\xa9 \xf0\x9f\x98\x80"}',
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    b"\xef\xbb\xbf{}",
    b'{"a": 1} {"b": 2}',
    b'{"a": "\x01"}',
    b'{"a": 01, "b": 1., "c": .5, "d": -}',
]

CSV = [
    (ROOT / "docs" / "integrations.md")
    .read_text()
    .split("```csv\n")[1]
    .split("```")[0]
    .encode(),
    b"database,schema,name,col_name\nshop,sales,orders,id\n",
    (
        b"database,schema,name,description,is_view,last_updated_time,col_name,col_type,"
        b'col_description,sort_order\r\nshop,sales,orders,"multi\r\nline, with comma",false,'
        b"1700000000,id,int,Key,1\r\nshop.prod,sales,orders,x,FALSE,last week,id,int,,first\r\n"
    ),
    b"\xef\xbb\xbfdatabase,schema,name,col_name\n",
    b"database,schema,name,col_name\nshop,sales,\xff,id\nshop,sales\n",
]

_DOC = (ROOT / "docs" / "integrations.md").read_text()
_RESOURCES = _DOC.split("`resources.jsonl`, one object a line:\n\n```json\n")[1].split(
    "```"
)[0]
_LINEAGES = _DOC.split("`lineages.jsonl`, one object a line:\n\n```json\n")[1].split(
    "```"
)[0]
JSONL = [
    _RESOURCES.encode() + b"\xff" + _LINEAGES.encode(),
    _RESOURCES.encode(),
    (
        b'{"entity_type": "column", "databuilder_id": "c", "parent_databuilder_id": "shop.sales.orders"}\n'
        b"\n"
        b'{"entity_type": "view", "databuilder_id": "c"}\nnot json\n[1]\n'
    ),
    (
        b'{"entity_type": "database", "databuilder_id": "db"}\n\xff'
        b'{"from_identifier": {"type": "internal_resource", "databuilder_id": "ghost"},'
        b' "to_identifier": {"type": "tables_from_query", "sql": "select 1"}}\n'
    ),
]

FORM = (
    b'--XyZ\r\nContent-Disposition: form-data; name="run_results"; filename="run_results.json"'
    b'\r\nContent-Type: application/json\r\n\r\n{"results": []}\r\n--XyZ\r\n'
    b'Content-Disposition: form-data; name="manifest"\r\n\r\nvalue\0with\0zeros\r\n--XyZ--\r\n'
)


def main():
    for data in fixtures():
        write("metadata_prefix", b"\x07" + data[:1500])
    for data in JSON:
        write("metadata_prefix", b"\x00" + data)
        write("json_validator", b"\x03" + data)
    run_operation = ROOT / "tests/fixtures/run-operation/run_results.json"
    write("json_validator", b"\x40" + run_operation.read_bytes())
    for data in CSV:
        write("csv_import", b"\x05" + data)
    for data in JSONL:
        write("jsonl_import", data)
    write("multipart", b"\x10\x05" + FORM)
    write("multipart", b"\x00\x00--XyZ\r\nContent-Disposition: form-data\r\n\r\n--XyZ")


if __name__ == "__main__":
    main()
