#!/usr/bin/env python3
"""Rewrites a .cu file for the CPU simulator: kernel launches, __shared__."""
import re, sys
src = open(sys.argv[1]).read()
out = src
# extern __shared__ dynamic smem
out, n1 = re.subn(r'extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?unsigned\s+char\s+(\w+)\[\]\s*;',
                  r'unsigned char *\1 = simDynSmem();', out)
# static __shared__ arrays
ctr = [0]
def shared(m):
    ctr[0] += 1
    return f'{m.group(1)} *{m.group(2)} = simShared<{m.group(1)}>({m.group(3)}, {ctr[0]});'
out, n2 = re.subn(r'__shared__\s+(?:__align__\(\d+\)\s+)?([\w:]+)\s+(\w+)\[([^\]]+)\]\s*;', shared, out)
assert '__shared__' not in out, 'unhandled __shared__'
# launches: NAME[<...>]<<<cfg>>>(  ->  simLaunch(NAME[<...>], cfg,
n3 = 0
while True:
    i = out.find('<<<')
    if i < 0: break
    j = i
    while out[j-1].isspace(): j -= 1
    if out[j-1] == '>':
        depth = 0; j -= 1
        while True:
            if out[j] == '>': depth += 1
            elif out[j] == '<': depth -= 1
            if depth == 0: break
            j -= 1
    while out[j-1].isalnum() or out[j-1] in '_:': j -= 1
    name = out[j:i].strip()
    k = out.find('>>>', i)
    m = re.compile(r'>>>\s*\(').match(out, k)
    assert m, 'no ( after >>>'
    cfg = out[i+3:k]
    out = out[:j] + 'simLaunch(' + name + ', ' + cfg + ', ' + out[m.end():]
    n3 += 1
sys.stderr.write(f'{sys.argv[1]}: {n1} dynamic smem, {n2} static __shared__, {n3} launches\n')
open(sys.argv[2], 'w').write(out)
