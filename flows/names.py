"""Flow and deployment names, shared by flows, prefect.yaml checks and the API launcher."""

CLEANUP_FLOW = "cleanup"
CLEANUP_DEPLOYMENT = f"{CLEANUP_FLOW}/cleanup"
BATCH_CLEANUP_FLOW = "cleanup-batches"
BATCH_CLEANUP_DEPLOYMENT = f"{BATCH_CLEANUP_FLOW}/cleanup-batches"
