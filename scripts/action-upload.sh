#!/usr/bin/env bash
# The GitHub Action's upload step (action.yml): the inputs, given as INPUT_* variables, become
# dbt-secoda's own variables only when they are set, so an input left empty leaves what the job's
# env: says (a job-level DBT_PROJECT_DIR or SECODA_REGION) in force, and else the default.
set -euo pipefail

while read -r input variable; do
  value="${!input:-}"
  if [ -n "$value" ]; then
    export "$variable=$value"
  fi
done <<'INPUTS'
INPUT_API_KEY SECODA_API_KEY
INPUT_INTEGRATION_ID SECODA_INTEGRATION_ID
INPUT_API_URL SECODA_API_URL
INPUT_REGION SECODA_REGION
INPUT_TARGET_DIR DBT_TARGET_PATH
INPUT_PROJECT_DIR DBT_PROJECT_DIR
INPUT_FAIL_ON DBT_SECODA_FAIL_ON
INPUT_ON_API_ERROR DBT_SECODA_ON_API_ERROR
INPUT_JUNIT DBT_SECODA_JUNIT
INPUTS

case "${INPUT_WAIT:-true}" in
  true) exec dbt-secoda upload ;;
  false) exec dbt-secoda upload --no-wait ;;
  *) exec dbt-secoda upload --wait-timeout "$INPUT_WAIT" ;;
esac
