"""The deploy targets: one package per target (`<name>/__init__.py` declares its `SPEC`,
`config.py` its `deploy` table, `stack_file.py` its stack file, `target.py` its operations on
the engine), found by the registry. Its templates are `compose-templates/targets/<name>/`.

Nothing here imports a target's module, the configuration model or the engine: see
registry.py.
"""
