"""A small IAM policy evaluator, for what moto does not check.

moto evaluates EC2 and SSM calls against the resource "*" and treats
every condition as met. This evaluates the unwidened policy the way IAM
does on the points our policies use: explicit Deny wins, otherwise some
Allow must match; Action and Resource with * and ? wildcards
(case-insensitive actions); conditions StringEquals, StringLike, ArnLike
(and their IfExists forms) with policy variables such as
${ec2:SourceInstanceARN}; all operators and keys must hold, any listed
value may match; a key missing from the request fails its condition.

authorizations() turns one recorded request (from FaultProxy) into the
(action, resource ARN, context) triples AWS authorises for it, using the
tags the run gave each instance and parameter.
"""

import re

REGION = "us-east-1"
ACCOUNT = "123456789012"


def _glob(pattern, value, case=True):
    # IAM wildcards are * and ? only; [ is literal.
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, 0 if case else re.IGNORECASE) is not None


def _list(v):
    return v if isinstance(v, list) else [v]


def _subst(value, ctx):
    """Policy variables; None when one is missing (the value cannot match)."""
    missing = []

    def rep(m):
        k = m.group(1)
        if k not in ctx:
            missing.append(k)
            return ""
        return ctx[k]
    out = re.sub(r"\$\{([^}]+)\}", rep, value)
    return None if missing else out


def _ctx_get(ctx, key):
    # Condition keys are case-insensitive; tag keys after the slash are not.
    for k, v in ctx.items():
        head, _, tail = k.partition("/")
        khead, _, ktail = key.partition("/")
        if head.lower() == khead.lower() and tail == ktail:
            return v
    return None


def _condition_holds(op, key, wanted, ctx):
    if_exists = op.endswith("IfExists")
    base = op[:-len("IfExists")] if if_exists else op
    have = _ctx_get(ctx, key)
    if have is None:
        return if_exists
    for w in _list(wanted):
        w = _subst(w, ctx)
        if w is None:
            continue
        if base == "StringEquals" and have == w:
            return True
        if base in ("StringLike", "ArnLike") and _glob(w, have):
            return True
        if base not in ("StringEquals", "StringLike", "ArnLike"):
            raise ValueError("operator not supported: " + op)
    return False


def _statement_matches(st, action, resource, ctx):
    if not any(_glob(a, action, case=False) for a in _list(st.get("Action", []))):
        return False
    if not any(_glob(r, resource) for r in _list(st.get("Resource", []))):
        return False
    for op, kv in st.get("Condition", {}).items():
        for key, wanted in kv.items():
            if not _condition_holds(op, key, wanted, ctx):
                return False
    return True


def evaluate(policy, action, resource, ctx=None):
    """"Allow", "ExplicitDeny" or "ImplicitDeny"."""
    ctx = ctx or {}
    allowed = False
    for st in policy["Statement"]:
        if _statement_matches(st, action, resource, ctx):
            if st["Effect"] == "Deny":
                return "ExplicitDeny"
            allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def ec2_arn(kind, rid, account=ACCOUNT):
    return "arn:aws:ec2:%s:%s:%s/%s" % (REGION, account, kind, rid)


def param_arn(name):
    return "arn:aws:ssm:%s:%s:parameter%s" % (REGION, ACCOUNT, name)


def _form_list(params, prefix):
    out, i = [], 1
    while "%s.%d" % (prefix, i) in params:
        out.append(params["%s.%d" % (prefix, i)])
        i += 1
    return out


def _tag_spec(params):
    """{resource type: {key: value}} from TagSpecification.N."""
    out, i = {}, 1
    while "TagSpecification.%d.ResourceType" % i in params:
        tags, j = {}, 1
        while "TagSpecification.%d.Tag.%d.Key" % (i, j) in params:
            tags[params["TagSpecification.%d.Tag.%d.Key" % (i, j)]] = \
                params.get("TagSpecification.%d.Tag.%d.Value" % (i, j), "")
            j += 1
        out[params["TagSpecification.%d.ResourceType" % i]] = tags
        i += 1
    return out


def _tags_ctx(prefix, tags):
    return {"%s/%s" % (prefix, k): v for k, v in tags.items()}


class World:
    """What the run created, so later calls know their resources' tags."""

    def __init__(self):
        self.instance_tags = {}  # instance id -> tags
        self.param_tags = {}  # name -> tags

    def learn(self, service, action, params, status, body):
        if status >= 300:
            return
        if action == "RunInstances":
            for iid in re.findall(rb"<instanceId>([^<]+)</instanceId>", body):
                self.instance_tags[iid.decode()] = _tag_spec(params).get("instance", {})
        if action == "PutParameter" and params.get("Tags"):
            self.param_tags[params["Name"]] = {t["Key"]: t["Value"] for t in params["Tags"]}
        if action == "DeleteParameter":
            self.param_tags.pop(params.get("Name"), None)


def authorizations(world, service, action, params, status, body, caller_ctx=None):
    """The (action, resource, context) triples AWS checks for one call."""
    caller_ctx = caller_ctx or {}
    out = []

    def add(act, res, ctx=None):
        c = dict(caller_ctx)
        c.update(ctx or {})
        out.append((act, res, c))

    if service == "ec2" and action == "RunInstances":
        spec = _tag_spec(params)
        ids = [i.decode() for i in re.findall(rb"<instanceId>([^<]+)</instanceId>", body)] or ["i-new"]
        itags = _tags_ctx("aws:RequestTag", spec.get("instance", {}))
        vtags = _tags_ctx("aws:RequestTag", spec.get("volume", {}))
        for iid in ids:
            add("ec2:RunInstances", ec2_arn("instance", iid), itags)
            add("ec2:CreateTags", ec2_arn("instance", iid), dict(itags, **{"ec2:CreateAction": "RunInstances"}))
        add("ec2:RunInstances", ec2_arn("volume", "vol-new"), vtags)
        if spec.get("volume"):
            add("ec2:CreateTags", ec2_arn("volume", "vol-new"), dict(vtags, **{"ec2:CreateAction": "RunInstances"}))
        if params.get("ImageId"):
            add("ec2:RunInstances", ec2_arn("image", params["ImageId"], account=""))
        if params.get("SubnetId"):
            add("ec2:RunInstances", ec2_arn("subnet", params["SubnetId"]))
        for sg in _form_list(params, "SecurityGroupId"):
            add("ec2:RunInstances", ec2_arn("security-group", sg))
        add("ec2:RunInstances", ec2_arn("network-interface", "eni-new"))
        if params.get("LaunchTemplate.LaunchTemplateId"):
            add("ec2:RunInstances", ec2_arn("launch-template", params["LaunchTemplate.LaunchTemplateId"]))
        if params.get("IamInstanceProfile.Name") or params.get("IamInstanceProfile.Arn"):
            add("iam:PassRole", "arn:aws:iam::%s:role/ephemera-preview" % ACCOUNT,
                {"iam:PassedToService": "ec2.amazonaws.com"})
    elif service == "ec2" and action == "DescribeInstances":
        add("ec2:DescribeInstances", "*")
    elif service == "ec2" and action in ("StartInstances", "StopInstances", "TerminateInstances"):
        for iid in _form_list(params, "InstanceId"):
            add("ec2:" + action, ec2_arn("instance", iid),
                _tags_ctx("ec2:ResourceTag", world.instance_tags.get(iid, {})))
    elif service == "ssm" and action == "SendCommand":
        for iid in params.get("InstanceIds", []):
            add("ssm:SendCommand", ec2_arn("instance", iid),
                _tags_ctx("ssm:resourceTag", world.instance_tags.get(iid, {})))
        add("ssm:SendCommand", "arn:aws:ssm:%s::document/%s" % (REGION, params.get("DocumentName")))
    elif service == "ssm" and action in ("GetCommandInvocation", "DescribeParameters"):
        add("ssm:" + action, "*")
    elif service == "ssm" and action in ("PutParameter", "DeleteParameter", "GetParameter"):
        name = params.get("Name", "")
        if action == "PutParameter" and params.get("Tags"):
            req = {t["Key"]: t["Value"] for t in params["Tags"]}
            add("ssm:PutParameter", param_arn(name), _tags_ctx("aws:RequestTag", req))
            add("ssm:AddTagsToResource", param_arn(name), _tags_ctx("aws:RequestTag", req))
        else:
            add("ssm:" + action, param_arn(name),
                _tags_ctx("aws:ResourceTag", world.param_tags.get(name, {})))
    else:
        add("%s:%s" % (service, action), "*")
    return out


def check_run(policy, records, caller_ctx=None):
    """Every recorded call against `policy`; the denied triples (none: ok)."""
    world, denied = World(), []
    for svc, action, params, status, body in records:
        for act, res, ctx in authorizations(world, svc, action, params, status, body, caller_ctx):
            if evaluate(policy, act, res, ctx) != "Allow":
                denied.append((act, res, ctx))
        world.learn(svc, action, params, status, body)
    return denied


