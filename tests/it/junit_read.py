#!/usr/bin/env python3
"""Reads a JUnit XML file the way CI dashboards do, with junitparser (the reader behind the
publish-unit-test-result GitHub Action), and prints what it understood as one JSON document.

usage: junit_read.py FILE
"""

import json
import sys

from junitparser import Error, Failure, JUnitXml, Skipped


def outcome(case):
    kinds = {Failure: "failure", Error: "error", Skipped: "skipped"}
    for result in case.result:
        for kind, name in kinds.items():
            if isinstance(result, kind):
                return name, result.message
    return "passed", None


def main():
    xml = JUnitXml.fromfile(sys.argv[1])
    suites = []
    for suite in xml:
        cases = []
        for case in suite:
            status, message = outcome(case)
            cases.append(
                {
                    "name": case.name,
                    "classname": case.classname,
                    # Attributes junitparser does not model, read as GitLab does: by name.
                    "file": case._elem.get("file"),
                    "time": case.time,
                    "status": status,
                    "message": message,
                    "system_out": case.system_out,
                    "properties": {
                        p.get("name"): p.get("value")
                        for p in case._elem.iterfind("properties/property")
                    },
                }
            )
        suites.append(
            {
                "name": suite.name,
                "tests": suite.tests,
                "failures": suite.failures,
                "errors": suite.errors,
                "skipped": suite.skipped,
                "properties": {p.name: p.value for p in suite.properties()},
                "cases": cases,
            }
        )
    json.dump({"suites": suites}, sys.stdout)


if __name__ == "__main__":
    main()
