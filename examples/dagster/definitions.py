"""Dagster: every materialization of the dbt assets is uploaded to Secoda by one watcher.

dagster-dbt gives each dbt invocation a folder of its own under DBT_TARGET_PATH (target/ by
default): target/<unique id>/manifest.json and run_results.json. Run dbt-secoda beside the code
location (examples/docker-compose/dagster.yaml, or as a sidecar in Kubernetes) with

    dbt-secoda watch --target-glob '/opt/dagster/dbt/target/*'

and it watches every such folder as it appears, uploads each run once, and stops watching a
folder when it is deleted. Nothing in this file talks to Secoda.
"""

from pathlib import Path

from dagster import AssetExecutionContext, Definitions
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

analytics = DbtProject(project_dir=Path(__file__).parent / "analytics")
analytics.prepare_if_dev()


@dbt_assets(manifest=analytics.manifest_path)
def analytics_models(context: AssetExecutionContext, dbt: DbtCliResource):
    # One `dbt build` a materialization: its folder holds the whole run's pair.
    yield from dbt.cli(["build"], context=context).stream()


defs = Definitions(
    assets=[analytics_models],
    resources={"dbt": DbtCliResource(project_dir=analytics)},
)
