"""The workbench, the model the app and ``espdfu watch`` render: each USB port's life as one
state machine, the build folder's artifacts, the build, the flashes, the consoles, and the
views and events a front end draws."""
