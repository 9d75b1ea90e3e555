from segrl.cli import app

app(prog_name="segrl")
