"""The pinpipe batch job as an Airflow 3 DAG (SPEC section 7, the MWAA part).

Runs `pinpipe batch` once a day: it reads the sink files of the pipeline's topics that are new
since its last run, adds their cleaned rows to the batch Delta tables in the lake, answers Q1-Q8
from those tables and replaces the results folder (report included). A run that failed or was
killed is completed by the next one (Airflow's retries included). Copy this file into
the DAGs folder of an Airflow 3 deployment that can run the pinpipe binary.

Settings, first found wins:
- the pipeline id: env PINPIPE_ID, else the Airflow Variable `pinpipe_id`, else `pinterest`;
  the DAG id is `<id>_dag` (read when the file is parsed);
- the binary: the Airflow Variable `pinpipe_bin`, else env PINPIPE_BIN, else `pinpipe` on PATH;
- the data folder: the Airflow Variable `pinpipe_data`, else env PINPIPE_DATA, else
  /opt/pinpipe/data.
Other pinpipe settings (`--lake`, `--out`, `--config`) come from the worker's PINPIPE_* variables
or a pinpipe.toml, as for any pinpipe command.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

DEFAULT_ID = "pinterest"


def _pipeline_id() -> str:
    """The pipeline id: env first, then the Airflow Variable, then the default."""
    from_env = os.environ.get("PINPIPE_ID")
    if from_env:
        return from_env
    try:
        from airflow.sdk import Variable

        return Variable.get("pinpipe_id", default=DEFAULT_ID) or DEFAULT_ID
    except Exception:  # no metadata database or API server while parsing: use the default
        return DEFAULT_ID


PIPELINE_ID = _pipeline_id()

with DAG(
    dag_id=f"{PIPELINE_ID}_dag",
    description="pinpipe batch job: sink files in the lake -> cleaned tables, Q1-Q8, report",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "pinpipe",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
    },
    params={
        "pinpipe_bin": os.environ.get("PINPIPE_BIN", "pinpipe"),
        "pinpipe_data": os.environ.get("PINPIPE_DATA", "/opt/pinpipe/data"),
    },
    tags=["pinpipe", "batch"],
) as dag:
    # Values travel as environment variables (pinpipe reads PINPIPE_<FLAG> for every flag), so no
    # setting is ever pasted into the shell command.
    BashOperator(
        task_id="run_batch",
        bash_command='"$PINPIPE_BIN" batch',
        env={
            "PINPIPE_BIN": "{{ var.value.get('pinpipe_bin', params.pinpipe_bin) }}",
            "PINPIPE_DATA": "{{ var.value.get('pinpipe_data', params.pinpipe_data) }}",
            "PINPIPE_ID": PIPELINE_ID,
        },
        append_env=True,
    )
