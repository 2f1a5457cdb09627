"""offline: feed a bag's measurements through the estimation and protection cores."""


def add_arguments(parser):
    parser.add_argument('bag')


def run(args):
    raise NotImplementedError
