#!/usr/bin/env python3
"""examples/airflow/dbt_secoda_dag.py under real Airflow and astronomer-cosmos.

Run by the Python of a venv that has both (`.ci/run` makes one). Checks:

1. Airflow's DagBag loads the file without import errors and finds both DAGs, `dbt_nightly` and
   `dbt_nightly_cosmos`; `dbt_nightly` runs `report_to_secoda` after `dbt_build` with
   trigger_rule all_done, its key and integration from Variables through the environment.
2. The Cosmos DAG, as the DagBag loaded it: one DbtBuildLocalOperator whose callback is the
   example's.
3. That callback, called as Cosmos calls it (the project copy's path), against the simulator with
   Airflow Variables from the environment (AIRFLOW_VAR_*): a failing build uploads and raises,
   a passing one uploads and returns.

usage: VENV/bin/python scripts/e2e-airflow.py
"""

import json
import os
import shutil
import sys
import tempfile

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "debug", "dbt-secoda")
EXAMPLE = os.path.join(ROOT, "examples", "airflow")
KEY = f"e2e-airflow-key-{os.getpid()}"
INTEGRATION = "5ec0da00-0000-4000-8000-00000000db70"


def fail(message):
    harness.fail("e2e-airflow", message)


def main():
    home = tempfile.mkdtemp(prefix="e2e-airflow-")
    os.environ.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        NO_COLOR="1",
    )
    from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=EXAMPLE, include_examples=False)
    if bag.import_errors:
        fail(f"the DAG file does not import: {bag.import_errors}")
    if set(bag.dag_ids) != {"dbt_nightly", "dbt_nightly_cosmos"}:
        fail(f"the DAG file registers {sorted(bag.dag_ids)}, not both DAGs")
    dag = bag.dags["dbt_nightly"]
    report = dag.get_task("report_to_secoda")
    if report.trigger_rule != "all_done":
        fail(f"report_to_secoda runs on {report.trigger_rule}, not all_done")
    if report.upstream_task_ids != {"dbt_build"}:
        fail(f"report_to_secoda follows {report.upstream_task_ids}")
    if "var.value.secoda_api_key" not in report.env["SECODA_API_KEY"]:
        fail("the key does not come from an Airflow Variable")
    if "{{" in report.bash_command:
        fail("the command line is templated")
    print(
        "e2e-airflow: dbt_nightly loads; report_to_secoda follows dbt_build, all_done"
    )

    sys.path.insert(0, EXAMPLE)
    import dbt_secoda_dag as example

    (task,) = bag.dags["dbt_nightly_cosmos"].tasks
    if type(task).__name__ != "DbtBuildLocalOperator":
        fail(f"the Cosmos DAG runs {type(task).__name__}")
    if getattr(task.callback, "__name__", None) != "report_from_cosmos":
        fail(f"the Cosmos task's callback is {task.callback!r}, not the example's")
    print(
        "e2e-airflow: both DAGs load; the Cosmos one runs a DbtBuildLocalOperator with the callback"
    )

    sim = harness.Process(
        [BIN, "simulator", "--api-key", KEY, "--sync-seconds", "0.3"],
        name="e2e-airflow",
    )
    url = sim.wait_for("listening on ").split("listening on ")[1]
    os.environ.update(
        AIRFLOW_VAR_SECODA_API_KEY=KEY,
        AIRFLOW_VAR_SECODA_INTEGRATION_ID=INTEGRATION,
        SECODA_API_URL=url,
        DBT_SECODA_POLL_INTERVAL="100ms",
        PATH=os.path.dirname(BIN) + os.pathsep + os.environ["PATH"],
    )
    try:
        for fixture, should_raise in (
            (os.path.join(ROOT, "demo", "artifacts", "build-with-failures"), True),
            (os.path.join(ROOT, "tests", "fixtures", "build-passing"), False),
        ):
            project = tempfile.mkdtemp(prefix="cosmos-copy-")
            shutil.copy(
                os.path.join(ROOT, "tests", "dbt-project", "dbt_project.yml"), project
            )
            os.makedirs(os.path.join(project, "target"))
            for name in ("manifest.json", "run_results.json"):
                shutil.copy(
                    os.path.join(fixture, name), os.path.join(project, "target")
                )
            # The report goes to the task log; here, away from this script's own.
            saved = os.dup(1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            try:
                example.report_from_cosmos(project, context={})
                raised = None
            except RuntimeError as error:
                raised = error
            finally:
                os.dup2(saved, 1)
            if should_raise and (raised is None or "exited 1" not in str(raised)):
                fail(f"a failing build did not fail the callback: {raised}")
            if not should_raise and raised is not None:
                fail(f"a passing build failed the callback: {raised}")
        uploads = json.loads(harness.get(f"{url}/_simulator/state"))["uploads"]
        if len(uploads) != 2:
            fail(f"{len(uploads)} uploads from two callbacks")
        print(
            "e2e-airflow: the Cosmos callback uploads; exit 1 fails the task, 0 passes"
        )
    finally:
        sim.proc.kill()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
