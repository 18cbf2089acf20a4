"""batch/v1 (k8s.io/api/batch/v1/generated.proto)."""

from __future__ import annotations

from k3s_backup.formats.k8s_api.fields import (
    BOOL,
    INT,
    Table,
    f,
    skip,
    status,
)

BATCH: dict[str, Table] = {
    "Job": {1: f("metadata", "ObjectMeta"), 2: f("spec", "JobSpec"), 3: status()},
    "JobSpec": {
        1: f("parallelism", INT, ptr=True),
        2: f("completions", INT, ptr=True),
        3: f("activeDeadlineSeconds", INT, ptr=True),
        4: f("selector", "LabelSelector", ptr=True),
        5: f("manualSelector", BOOL, ptr=True),
        6: f("template", "PodTemplateSpec"),
        7: f("backoffLimit", INT, ptr=True),
        8: f("ttlSecondsAfterFinished", INT, ptr=True),
        9: f("completionMode", ptr=True),
        10: f("suspend", BOOL, ptr=True),
        11: skip("podFailurePolicy"),
        12: f("backoffLimitPerIndex", INT, ptr=True),
        13: f("maxFailedIndexes", INT, ptr=True),
        14: f("podReplacementPolicy", ptr=True),
        15: f("managedBy", ptr=True),
        16: skip("successPolicy"),
    },
    "CronJob": {1: f("metadata", "ObjectMeta"), 2: f("spec", "CronJobSpec"), 3: status()},
    "CronJobSpec": {
        1: f("schedule"),
        2: f("startingDeadlineSeconds", INT, ptr=True),
        3: f("concurrencyPolicy"),
        4: f("suspend", BOOL, ptr=True),
        5: f("jobTemplate", "JobTemplateSpec"),
        6: f("successfulJobsHistoryLimit", INT, ptr=True),
        7: f("failedJobsHistoryLimit", INT, ptr=True),
        8: f("timeZone", ptr=True),
    },
    "JobTemplateSpec": {1: f("metadata", "ObjectMeta"), 2: f("spec", "JobSpec")},
}
