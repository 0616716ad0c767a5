"""`dockgate`, the command line: ``main`` builds the parser and dispatches;
one module per family of commands. Nothing below the CLI imports it."""
