"""Airflow: report each dbt run to Secoda after it, even when it failed.

Two shapes: dbt run by a BashOperator, then dbt-secoda in a task with trigger_rule="all_done" (a
failing build is reported too, and that task fails when tests failed); and dbt run by
astronomer-cosmos, with dbt-secoda as the Cosmos callback that sees Cosmos' temporary target
folder before it is deleted.

Needs: Airflow 3, or Airflow 2.8+ with the apache-airflow-providers-standard package (the
BashOperator's import below); astronomer-cosmos 1.8+ for the second DAG, which is registered only
where Cosmos is installed; dbt-secoda on the workers (`pip install dbt-secoda` into the image or
the venv that runs dbt); and the Airflow Variables secoda_api_key (or a secrets backend) and
secoda_integration_id.
"""

import importlib.util
from datetime import datetime

from airflow import DAG
from airflow.providers.standard.operators.bash import BashOperator

DBT_PROJECT = "/opt/airflow/dbt/analytics"
# The binary pip installed; its full path when that environment's bin folder is not on the PATH
# (e.g. "/opt/airflow/dbt_venv/bin/dbt-secoda" for a venv of dbt's own).
DBT_SECODA = "dbt-secoda"

# Passed through the environment, never templated into the command line.
SECODA_ENV = {
    "SECODA_API_KEY": "{{ var.value.secoda_api_key }}",
    "SECODA_INTEGRATION_ID": "{{ var.value.secoda_integration_id }}",
    "DBT_PROJECT_DIR": DBT_PROJECT,
}

with DAG(
    dag_id="dbt_nightly",
    start_date=datetime(2026, 1, 1),
    schedule="0 5 * * *",
    catchup=False,
) as dag:
    dbt_build = BashOperator(
        task_id="dbt_build",
        bash_command="dbt build",
        cwd=DBT_PROJECT,
    )

    report_to_secoda = BashOperator(
        task_id="report_to_secoda",
        bash_command=f"{DBT_SECODA} upload --output json",
        env=SECODA_ENV,
        append_env=True,
        # Exit 1 means tests failed: the task fails, and the log holds the report.
        trigger_rule="all_done",
    )

    dbt_build >> report_to_secoda


def report_from_cosmos(project_dir, **_context):
    """A Cosmos callback: Cosmos runs dbt in a temporary copy of the project and calls this with
    that copy's path after the dbt command, before deleting it."""
    import os
    import subprocess

    from airflow.models import Variable

    env = {
        **os.environ,
        "SECODA_API_KEY": Variable.get("secoda_api_key"),
        "SECODA_INTEGRATION_ID": Variable.get("secoda_integration_id"),
    }
    done = subprocess.run(
        [DBT_SECODA, "upload", "--project-dir", project_dir, "--output", "json"],
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dbt-secoda exited {done.returncode} (1: tests failed)")


def cosmos_dag():
    """The same with astronomer-cosmos (1.8+) running dbt, imported only where it is installed.

    One `dbt build` task (DbtBuildLocalOperator), not a DbtTaskGroup: a task group runs one dbt
    command a node, each writing a pair of its own node only, and each upload would replace
    Secoda's view of the whole run with one node's."""
    from cosmos import ProfileConfig
    from cosmos.operators.local import DbtBuildLocalOperator

    with DAG(
        dag_id="dbt_nightly_cosmos",
        start_date=datetime(2026, 1, 1),
        schedule="0 5 * * *",
        catchup=False,
    ) as cosmos:
        DbtBuildLocalOperator(
            task_id="dbt_build",
            project_dir=DBT_PROJECT,
            profile_config=ProfileConfig(
                profile_name="analytics",
                target_name="prod",
                profiles_yml_filepath=f"{DBT_PROJECT}/profiles.yml",
            ),
            callback=report_from_cosmos,
        )
    return cosmos


if importlib.util.find_spec("cosmos") is not None:
    cosmos_nightly = cosmos_dag()
