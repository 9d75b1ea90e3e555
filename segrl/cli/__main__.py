from segrl.cli import app

app()
