"""The task platform's domain: tools, task states, the task runner and the task repository."""
