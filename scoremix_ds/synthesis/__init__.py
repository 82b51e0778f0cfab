"""``scoremix-ds build``: config, mixing plan, and the run that turns them into a dataset folder."""
