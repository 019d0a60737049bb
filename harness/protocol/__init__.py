"""The experiment: the phased plan of jobs, executing one job, the run directory, gaps,
predictors, groupings and scores of one ``harness run``."""
