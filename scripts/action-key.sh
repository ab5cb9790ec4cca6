#!/usr/bin/env bash
# The GitHub Action's first step (action.yml): whether there is an API key to upload with.
#
# A pull request from a fork runs without the repository's secrets, so `secrets.SECODA_API_KEY`
# is empty there. Then, unless the require-key input is true, the action writes a notice and
# succeeds without installing or uploading anything (outputs upload=false, and the later steps
# are skipped), so a fork's pull request is not failed for what its author cannot change. With
# require-key true an empty key fails the step instead, as a configuration error.
#
# Environment: INPUT_API_KEY (only tested for emptiness, never printed), INPUT_REQUIRE_KEY, and
# the runner's GITHUB_OUTPUT.
set -euo pipefail

out="${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: run this on a GitHub runner}"
case "${INPUT_REQUIRE_KEY:-false}" in
  true | false) ;;
  *)
    printf '::error title=dbt-secoda::require-key is %s; use true or false\n' "$INPUT_REQUIRE_KEY" >&2
    exit 2
    ;;
esac

if [ -n "${INPUT_API_KEY:-}" ]; then
  echo "upload=true" >>"$out"
elif [ "${INPUT_REQUIRE_KEY:-false}" = true ]; then
  printf '::error title=dbt-secoda::the api-key input is empty and require-key is true: set the secret (pull requests from forks get no secrets)\n' >&2
  exit 2
else
  printf '::notice title=dbt-secoda::the api-key input is empty (pull requests from forks get no secrets): nothing was uploaded to Secoda. Set require-key: true to fail instead.\n' >&2
  echo "upload=false" >>"$out"
fi
