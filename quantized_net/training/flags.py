"""The training commands' flags: those that set a configuration
(``train_mnist.py``, ``train_mnist_mn.py`` and ``sweep.py`` share them) and
those of a training run; reading them back, checked.
"""
from quantized_net import cli
from quantized_net.quantization import quantizers
from quantized_net.training import datasets
from quantized_net.training import presets

#: The configuration keys a flag can set: ``--unit`` sets ``unit``,
#: ``--weight-quant`` sets ``weight_quant`` and so on.
CONFIG_FLAGS = presets.QUANTIZER_KEYS + (
    'activation', 'layers', 'unit', 'epoch', 'batchsize', 'loss', 'lr',
    'lr_final', 'input_dropout', 'dropout', 'validation', 'architecture',
    'width', 'bn_batches')
#: The largest ``--seed``: NumPy's generator takes seeds below 2**32.
MAX_SEED = 2 ** 32 - 1


def flag(key):
    """The flag that sets configuration key ``key``."""
    return '--' + key.replace('_', '-')


def add_config_flags(parser, skip=(), preset='seed'):
    """The flags that choose the network and its training, each defaulting
    to the preset's value (``parser.set_defaults`` gives other defaults),
    the preset to ``preset``; leaves out the keys in ``skip``."""
    parser.add_argument('--preset', choices=sorted(presets.PRESETS),
                        default=preset,
                        help='Starting configuration (default {}): seed (the '
                             'original suite), float (no quantization), bnn '
                             '(the binarized MLP of the paper), bnn-conv (a '
                             'binarized ConvNet), cifar10 and svhn (the '
                             'paper\'s ConvNets for those data '
                             'sets)'.format(preset))
    group = parser.add_argument_group(
        'quantizers', 'each one of: ' + quantizers.SPEC_FORMS)
    roles = {'weight_quant': 'every weight matrix',
             'act_quant': 'every hidden activation',
             'grad_quant': 'the gradient at every linear output',
             'input_quant': 'the network input'}
    for key, what in roles.items():
        if key not in skip:
            group.add_argument(flag(key), type=cli.quantizer_spec,
                               metavar='SPEC',
                               help='Quantizer of {}'.format(what))
    count = cli.int_at_least(1)
    flags = [  # (key, short flag, argparse options)
        ('activation', None, dict(
            choices=presets.ACTIVATIONS,
            help='relu(q(x)) as the original, or q(clip(x, -1, 1)), '
                 'hard-tanh units as in the paper')),
        ('batchsize', '-b', dict(
            type=count, help='Number of images in each mini-batch')),
        ('epoch', '-e', dict(
            type=count, help='Number of sweeps over the dataset to train')),
        ('unit', '-u', dict(
            type=count, help='Number of units in each hidden layer')),
        ('layers', None, dict(type=count, help='Number of hidden layers')),
        ('loss', None, dict(choices=presets.LOSSES,
                            help='softmax cross-entropy or squared hinge')),
        ('lr', None, dict(type=cli.positive_float,
                          help="Adam's alpha (at the start)")),
        ('lr_final', None, dict(
            type=cli.positive_float,
            help='Decay alpha exponentially to this by the last epoch')),
        ('input_dropout', None, dict(type=cli.ratio,
                                     help='Dropout ratio on the input')),
        ('dropout', None, dict(
            type=cli.ratio,
            help='Dropout ratio after each hidden activation')),
        ('architecture', None, dict(
            metavar='LAYERS',
            help='Train a ConvNet of these layers: {} (the paper\'s), or '
                 'written as they are, such as 32C3-P2-64C3-P2-256FC '
                 '(NCk: N filters of k x k; P2: 2 x 2 max-pooling; NFC: N '
                 'units)'.format(', '.join(sorted(presets.ARCHITECTURES))))),
        ('width', None, dict(
            type=cli.positive_float,
            help='Scale the units or filters of every layer by this')),
        ('bn_batches', None, dict(
            type=cli.int_at_least(0, presets.MAX_BN_BATCHES), metavar='N',
            help='Before each evaluation, recompute batch normalisation\'s '
                 'statistics with the current weights over the first N '
                 'training batches; 0 evaluates with its running averages')),
        ('validation', None, dict(
            type=cli.int_at_least(0),
            help='Hold out this many training images to validate on, and '
                 'test on the test set; 0 validates on the test set as the '
                 'original')),
    ]
    for key, short, options in flags:
        if key not in skip:
            names = [flag(key)] + ([short] if short else [])
            parser.add_argument(*names, **options)


def config_from_args(args):
    """The preset's configuration with the flags given applied; a training
    command's data set (``args.dataset``, see :func:`add_train_flags`)
    replaces the preset's."""
    config = dict(presets.PRESETS[args.preset], preset=args.preset)
    for key in CONFIG_FLAGS:
        if getattr(args, key, None) is not None:
            config[key] = getattr(args, key)
    dataset = getattr(args, 'dataset', None)
    if dataset is not None:
        # MNIST, the default, is left unsaid, as runs recorded it before
        # there were others.
        config.pop('dataset', None)
        if dataset != datasets.DEFAULT:
            config['dataset'] = dataset
    return config


def add_train_flags(parser, dataset=datasets.DEFAULT, preset='seed'):
    """A training command's flags, each as in Chainer's examples where it
    has a counterpart there: the command trains on ``dataset``, from
    ``preset`` unless --preset says otherwise."""
    parser.set_defaults(dataset=dataset)
    parser.add_argument('--frequency', '-f', type=cli.int_at_least(1),
                        default=1,
                        help='Take a snapshot every this many epochs')
    cli.add_device_flags(parser)
    parser.add_argument('--out', '-o', default='result',
                        help='Directory to output the result')
    parser.add_argument('--resume', '-r', default=None,
                        help='Resume the training from this snapshot')
    parser.add_argument('--replace', action='store_true',
                        help='Delete the files of an earlier run in --out '
                             'and start again (without it, such a --out is '
                             'refused)')
    parser.add_argument('--noplot', dest='plot', action='store_false',
                        help='Disable PlotReport extension')
    parser.add_argument('--seed', type=cli.int_at_least(0, MAX_SEED),
                        default=None,
                        help='Random seed; the same seed on the CPU, with '
                             'as many BLAS threads, gives the same log')
    cli.add_dataset_flag(parser, dataset, datasets.ENVIRONMENT[dataset])
    add_config_flags(parser, preset=preset)


def parse_train_args(parser, argv=None):
    """The flags of :func:`add_train_flags` read, and the configuration
    they give checked: argparse's usage error (exit status 2) where it is
    not one a run can train."""
    args = cli.parse(parser, argv)
    try:
        presets.check_config(config_from_args(args))
    except ValueError as e:
        parser.error(str(e))
    return args
