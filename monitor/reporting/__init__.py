"""Reports: pure building (`build`, `model`, `periods`), rendering (`render`, `output`), charts
(`charts`, the only matplotlib user, run in worker processes) and the job that ties them to the
database (`job`)."""
