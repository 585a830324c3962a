from rigwatch.cli import app

app(prog_name="rigwatch")
