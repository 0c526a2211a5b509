"""The task service: every route that starts or steers work (tasks, raster jobs, CSW and Sentinel ingests,
``/datasets/jobs``, ``/sys/tasks``) goes through :class:`~georeg.api.tasks.service.TaskService`, the only code
that creates flow runs (``launcher``) or reads their state and logs from Prefect."""
