"""A small HCL reader for the infrastructure checks: enough structure to
say which blocks a module declares (with their labels and top-level
attributes) and which references its expressions make. It is not a full
HCL parser: `terraform fmt` proves the syntax; this reads what fmt has
accepted. Comments are dropped; string literals keep their text but only
their ${...} parts count as expressions; heredocs likewise."""

import re

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
REF = re.compile(r"(?<![\w.])(var|local|data|module|path|count|each|self|"
                 r"[a-z][a-z0-9]*_[a-z0-9_]+|source|build)\.([A-Za-z_][\w-]*)"
                 r"(?:\.([A-Za-z_][\w-]*))?\s*([\[)])?")


class Block:
    def __init__(self, kind, labels, line):
        self.kind = kind
        self.labels = labels
        self.line = line
        self.attrs = {}      # name -> expression text (code, strings kept)
        self.blocks = []     # nested Blocks
        self.code = []       # expression code of the whole body
        self.raw = ""        # the body's text as written

    def __repr__(self):
        return "Block(%s %s)" % (self.kind, self.labels)


class Reader:
    def __init__(self, text, name):
        self.s = text
        self.i = 0
        self.name = name
        self.line = 1

    def err(self, msg):
        raise SyntaxError("%s:%d: %s" % (self.name, self.line, msg))

    def peek(self, k=0):
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def adv(self, n=1):
        for _ in range(n):
            if self.peek() == "\n":
                self.line += 1
            self.i += 1

    def skip_space(self, newlines=True):
        while self.i < len(self.s):
            c = self.peek()
            if c == "#" or (c == "/" and self.peek(1) == "/"):
                while self.i < len(self.s) and self.peek() != "\n":
                    self.adv()
            elif c == "/" and self.peek(1) == "*":
                end = self.s.find("*/", self.i + 2)
                if end < 0:
                    self.err("unterminated comment")
                self.adv(end + 2 - self.i)
            elif c in " \t\r" or (newlines and c == "\n"):
                self.adv()
            else:
                return

    def string(self):
        """At a '"': returns (literal text, [interpolation code])."""
        self.adv()
        lit, interps = [], []
        while True:
            c = self.peek()
            if c == "":
                self.err("unterminated string")
            if c == "\\":
                lit.append(self.s[self.i:self.i + 2])
                self.adv(2)
            elif c == '"':
                self.adv()
                return "".join(lit), interps
            elif c in "$%" and self.peek(1) == c and self.peek(2) == "{":
                lit.append(c + "{")  # $${ and %%{ are literal
                self.adv(3)
            elif c in "$%" and self.peek(1) == "{":
                self.adv(2)
                interps.append(self.expr_until("}"))
                self.adv()
            else:
                lit.append(c)
                self.adv()

    def heredoc(self):
        m = re.match(r"<<-?([A-Za-z_]+)\n", self.s[self.i:])
        marker = m.group(1)
        self.adv(m.end())
        end = re.compile(r"^[ \t]*%s[ \t]*$" % marker, re.M).search(self.s, self.i)
        if not end:
            self.err("unterminated heredoc")
        body = self.s[self.i:end.start()]
        self.adv(end.end() - self.i)
        return body, [m.group(1) for m in re.finditer(r"(?<![$%])[$%]\{([^}]*)\}", body)]

    def expr_until(self, closers, stop_newline=False):
        """Reads an expression up to one of `closers` at depth 0 (not
        consumed). Returns its code: strings replaced by their
        interpolations, so only real expressions remain."""
        out, depth = [], 0
        while True:
            before = self.i
            self.skip_space(newlines=not stop_newline or depth > 0)
            if self.i != before:
                out.append(" ")
            c = self.peek()
            if c == "":
                if stop_newline:
                    return "".join(out)
                self.err("unexpected end of file")
            if depth == 0 and c in closers:
                return "".join(out)
            if c == '"':
                _, interps = self.string()
                out.append(' "" ' + " ".join("(%s)" % x for x in interps))
            elif c == "<" and self.peek(1) == "<" and re.match(r"<<-?[A-Za-z_]+\n", self.s[self.i:]):
                _, interps = self.heredoc()
                out.append(' "" ' + " ".join("(%s)" % x for x in interps))
            else:
                if c in "([{":
                    depth += 1
                elif c in ")]}":
                    depth -= 1
                out.append(c)
                self.adv()

    def body(self, block, closer):
        while True:
            self.skip_space()
            c = self.peek()
            if c == closer:
                self.adv()
                return
            if c == "":
                if closer == "":
                    return
                self.err("missing }")
            m = IDENT.match(self.s, self.i)
            if not m:
                self.err("expected a name, found %r" % c)
            name, line = m.group(0), self.line
            self.adv(m.end() - self.i)
            self.skip_space(newlines=False)
            if self.peek() == "=" and self.peek(1) != "=":
                self.adv()
                code = self.expr_until("\n}", stop_newline=True)
                block.attrs[name] = code
                block.code.append(code)
                continue
            labels = []
            while self.peek() == '"':
                lit, _ = self.string()
                labels.append(lit)
                self.skip_space(newlines=False)
            if self.peek() != "{":
                self.err("expected { after %s" % name)
            self.adv()
            child = Block(name, labels, line)
            start = self.i
            self.body(child, "}")
            child.raw = self.s[start:self.i - 1]
            block.blocks.append(child)
            block.code.extend(child.code)


def parse(text, name="<hcl>"):
    root = Block("file", [], 1)
    Reader(text, name).body(root, "")
    return root


def refs(code):
    """(head, name, attr, after) for each reference in expression code;
    after is "[" when indexed, ")" when passed whole to a function."""
    return [(m.group(1), m.group(2), m.group(3), m.group(4) or "")
            for m in REF.finditer(code)]
