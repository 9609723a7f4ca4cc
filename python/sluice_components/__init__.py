"""Shared code for every app in this workspace, owned by maintainers.

`applications/` is on `sys.path` when pages run (locally through `sluice run`
and `sluice test`, in Snowflake because deploy copies this folder next to the
app's files), so pages import `from components.base_page import BasePage`.
"""
