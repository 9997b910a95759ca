"""Res2Net-vd as the two frameworks that write real checkpoints define it.

`PaddleRes2NetVd` follows PaddleClas `ppcls/arch/backbone/model_zoo/res2net_vd.py`
(layer names, BatchNorm flavour, pooling modes) with the channel counts made
parameters, so that small fixtures can be built with the same code path as the
full-size Res2Net50_vd_26w_4s. `timm_res2net` builds timm's `res2net50d` family
through timm itself.
"""

import math

PADDLE_DEPTHS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3], 200: [3, 12, 48, 3]}


def paddle_model(depths, width=26, scales=4, classes=4, stem_width=32, base=64, layers=None):
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class ConvBNLayer(nn.Layer):
        def __init__(self, num_channels, num_filters, filter_size, stride=1, groups=1,
                     is_vd_mode=False, act=None):
            super().__init__()
            self.is_vd_mode = is_vd_mode
            self._pool2d_avg = nn.AvgPool2D(kernel_size=2, stride=2, padding=0, ceil_mode=True)
            self._conv = nn.Conv2D(num_channels, num_filters, filter_size, stride=stride,
                                   padding=(filter_size - 1) // 2, groups=groups,
                                   bias_attr=False)
            self._batch_norm = paddle.nn.BatchNorm(num_filters, act=act)

        def forward(self, inputs):
            if self.is_vd_mode:
                inputs = self._pool2d_avg(inputs)
            y = self._conv(inputs)
            return self._batch_norm(y)

    class BottleneckBlock(nn.Layer):
        def __init__(self, num_channels1, num_channels2, num_filters, stride, scales,
                     shortcut=True, if_first=False, name=None):
            super().__init__()
            self.stride = stride
            self.scales = scales
            self.conv0 = ConvBNLayer(num_channels1, num_filters, 1, act='relu')
            self.conv1_list = []
            for s in range(scales - 1):
                conv1 = self.add_sublayer(
                    name + '_branch2b_' + str(s + 1),
                    ConvBNLayer(num_filters // scales, num_filters // scales, 3,
                                stride=stride, act='relu'))
                self.conv1_list.append(conv1)
            self.pool2d_avg = nn.AvgPool2D(kernel_size=3, stride=stride, padding=1)
            self.conv2 = ConvBNLayer(num_filters, num_channels2, 1, act=None)
            if not shortcut:
                self.short = ConvBNLayer(num_channels1, num_channels2, 1, stride=1,
                                         is_vd_mode=not if_first)
            self.shortcut = shortcut

        def forward(self, inputs):
            y = self.conv0(inputs)
            xs = paddle.split(y, self.scales, 1)
            ys = []
            for s, conv1 in enumerate(self.conv1_list):
                if s == 0 or self.stride == 2:
                    ys.append(conv1(xs[s]))
                else:
                    ys.append(conv1(xs[s] + ys[-1]))
            if self.stride == 1:
                ys.append(xs[-1])
            else:
                ys.append(self.pool2d_avg(xs[-1]))
            conv1 = paddle.concat(ys, axis=1)
            conv2 = self.conv2(conv1)
            short = inputs if self.shortcut else self.short(inputs)
            return F.relu(paddle.add(x=short, y=conv2))

    class Res2NetVd(nn.Layer):
        def __init__(self):
            super().__init__()
            num_channels = [2 * stem_width] + [base * 4 * 2 ** b for b in range(3)]
            num_channels2 = [base * 4 * 2 ** b for b in range(4)]
            num_filters = [width * scales * 2 ** b for b in range(4)]
            self.conv1_1 = ConvBNLayer(3, stem_width, 3, stride=2, act='relu')
            self.conv1_2 = ConvBNLayer(stem_width, stem_width, 3, stride=1, act='relu')
            self.conv1_3 = ConvBNLayer(stem_width, 2 * stem_width, 3, stride=1, act='relu')
            self.pool2d_max = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
            self.stages = []
            for block in range(len(depths)):
                blocks = []
                shortcut = False
                for i in range(depths[block]):
                    if layers in [101, 152, 200] and block == 2:
                        conv_name = 'res' + str(block + 2) + ('a' if i == 0 else 'b' + str(i))
                    else:
                        conv_name = 'res' + str(block + 2) + chr(97 + i)
                    bb = self.add_sublayer(
                        'bb_%d_%d' % (block, i),
                        BottleneckBlock(
                            num_channels[block] if i == 0 else num_channels2[block],
                            num_channels2[block], num_filters[block],
                            2 if i == 0 and block != 0 else 1, scales,
                            shortcut=shortcut, if_first=block == i == 0, name=conv_name))
                    blocks.append(bb)
                    shortcut = True
                self.stages.append(blocks)
            self.pool2d_avg = nn.AdaptiveAvgPool2D(1)
            self.pool2d_avg_channels = num_channels2[-1]
            stdv = 1.0 / math.sqrt(self.pool2d_avg_channels)
            self.out = nn.Linear(self.pool2d_avg_channels, classes,
                                 weight_attr=paddle.ParamAttr(
                                     initializer=nn.initializer.Uniform(-stdv, stdv)))

        def forward(self, inputs):
            """Returns the logits and the four stage outputs."""
            y = self.conv1_3(self.conv1_2(self.conv1_1(inputs)))
            y = self.pool2d_max(y)
            stages = []
            for blocks in self.stages:
                for bb in blocks:
                    y = bb(y)
                stages.append(y)
            y = paddle.reshape(self.pool2d_avg(y), shape=[-1, self.pool2d_avg_channels])
            return self.out(y), stages

    return Res2NetVd()


def timm_model(depths, width=26, scales=4, classes=4, stem_width=32, base=64):
    from timm.models.res2net import Bottle2neck
    from timm.models.resnet import ResNet

    return ResNet(block=Bottle2neck, layers=depths, num_classes=classes,
                  base_width=width * 64 // base, stem_type='deep', avg_down=True,
                  stem_width=stem_width, channels=tuple(base * 2 ** b for b in range(4)),
                  block_args=dict(scale=scales))


def timm_forward(model, x):
    """Logits and the four stage outputs of a timm ResNet."""
    y = model.maxpool(model.act1(model.bn1(model.conv1(x))))
    stages = []
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        y = layer(y)
        stages.append(y)
    return model.fc(model.global_pool(y)), stages
