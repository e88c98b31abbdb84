"""Writes the caption-format sample transcripts (VTT, SRT) from turn lists.

Real caption exports split a speaker's turn into many short cues; this does the
same so the samples exercise cue merging. Run: python scripts/make_captions.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "transcripts"


def cues(turns: list[tuple[str, str]], words_per_cue: int = 14) -> list[tuple[str, str, float, float]]:
    out = []
    clock = 2.0
    for speaker, text in turns:
        words = text.split()
        for start in range(0, len(words), words_per_cue):
            chunk = " ".join(words[start : start + words_per_cue])
            duration = 0.4 * len(chunk.split())
            out.append((speaker, chunk, clock, clock + duration))
            clock += duration + 0.2
        clock += 1.0
    return out


def stamp(seconds: float, sep: str) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{int(secs):02d}{sep}{int(round((secs % 1) * 1000)):03d}"


def write_vtt(path: Path, turns: list[tuple[str, str]]) -> None:
    lines = ["WEBVTT", ""]
    for index, (speaker, text, start, end) in enumerate(cues(turns), start=1):
        lines += [f"{index}", f"{stamp(start, '.')} --> {stamp(end, '.')}", f"<v {speaker}>{text}</v>", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_srt(path: Path, turns: list[tuple[str, str]]) -> None:
    lines = []
    for index, (speaker, text, start, end) in enumerate(cues(turns), start=1):
        lines += [f"{index}", f"{stamp(start, ',')} --> {stamp(end, ',')}", f"{speaker}: {text}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def turns_from(text: str) -> list[tuple[str, str]]:
    turns = []
    for block in re.split(r"\n\s*\n", text.strip()):
        speaker, _, body = block.partition(":")
        turns.append((speaker.strip(), " ".join(body.split())))
    return turns


PARTNER_01 = """
Interviewer: Thanks for joining. Could you start by describing your organisation?

Sam Okafor: Yeah, of course. We're a housing association, medium sized, about two thousand homes across the region, and we've got a supported housing arm that does floating support and a couple of hostels. We've worked with people leaving prison for a long time, mostly through the hostels, so when the partnership came along it felt like a natural fit.

Interviewer: How were you approached?

Sam Okafor: The lead charity rang us. We've done a lot together over the years so it was a very quick conversation, honestly. They said there's a bid going in, the deadline is in a few weeks, are you in? And we said yes more or less on the spot. I think if we'd had longer we'd have asked more questions up front, about the budget, about what we'd be accountable for. But you don't get that luxury when it's that tight.

Interviewer: What sort of questions?

Sam Okafor: Well, like, what's our role exactly? Are we providing the accommodation, or the support, or both? Who's managing the risk if somebody in one of our flats reoffends? In the bid it just said housing partner, and that could mean anything. It took us about six months into delivery to properly pin that down, and there were a few awkward moments along the way, I'll be honest.

Interviewer: Can you give an example of an awkward moment?

Sam Okafor: There was a tenant, I won't go into details, who was struggling, and the mentor from the charity and our housing officer had completely different ideas about whose job it was to deal with the rent arrears. Nobody had ever written that down. It got sorted, and actually it led to us writing a joint protocol, which is now used across the partnership, so something good came out of it.

Interviewer: How has the service been going more generally?

Sam Okafor: Really well, I'd say. We've housed, I think, forty-odd people through the partnership so far. Tenancy sustainment is above ninety percent at six months, which for this group is very good. The key thing is having the mentor alongside, so if things start to go wrong, missed payments, neighbours complaining, someone's on it straight away. Before, we'd only find out at the eviction stage. We've also got a couple of our tenants now doing peer support in the hostel, which has been lovely to see.

Interviewer: Were there any tensions between the partners during development?

Sam Okafor: Not with the lead, no. There was a bit of, not tension exactly, but some caution from one of the other charities because they were also in a different partnership in the next local authority area. So in meetings they'd sometimes say, we can't really talk about our model in detail. Which, fine, but it made the whole thing feel a bit less like a partnership and more like a negotiation. It's the funding environment, isn't it, everyone's fighting for the same money.

Interviewer: What about the people who came to the meetings?

Sam Okafor: From our side it was always me, which I think helped. I made that a rule, actually, I said I'm not sending a deputy because I know what happens. From the council side it was a bit of a revolving door for a while, different faces every time, but that settled down.

Interviewer: And looking forward, after the funding period?

Sam Okafor: I'm worried, to be frank. The housing bit we can probably keep going, because rent covers a lot of it. But the mentoring, the floating support, that's all grant funded. If the council or someone doesn't commit to it, it'll go. And that would be a real shame, because the whole point is the combination. I keep asking, who's going to pay for this in two years, and nobody has an answer yet.

Interviewer: Thank you. Anything to add?

Sam Okafor: Just that it's been one of the better partnerships I've been in. Despite everything.
"""

STAKEHOLDER_02 = """
Interviewer: Could you tell me about your role and how it relates to the partnerships?

Dr Helen Marr: I'm head of policy at the national association for voluntary sector justice organisations. We represent about a hundred and twenty member organisations, from very small peer-led groups up to the big national charities. So my perspective is really what our members told us, and what we saw in the round.

Interviewer: What did your members tell you about developing the partnerships?

Dr Helen Marr: A few consistent things. First, and probably loudest, was about the pace. The development period was, I think, eight weeks in the first round, which is not long to build a partnership from scratch. And what it meant in practice was that the bigger organisations, who have bid writers and finance teams, could move quickly, and the small organisations simply couldn't keep up. A lot of our smaller members felt shut out, not deliberately, but because they couldn't respond in time.

Interviewer: Was that the main challenge?

Dr Helen Marr: It was one of them. The second would be the competitive dynamic. You've got a fund that says it's about collaboration, but at the end of the day there's a finite pot and bids are assessed against each other. So organisations are simultaneously partners and competitors, sometimes in the same room. Some members told us they'd been asked to join two or three bids and didn't know whether to say yes to all of them. There was also a feeling, in one or two areas, that the local authority had already decided which provider it wanted, and the partnership process was a bit of a formality.

Interviewer: Did members feel supported by the fund?

Dr Helen Marr: Mixed. The fund team were approachable, people liked them. But the guidance wasn't always consistent. Members would ring us and say, we've been told this, but another partnership has been told something different. Is match funding required or not? Can we pay for a coordinator post? Those basic questions didn't have straightforward answers, and it created a lot of anxiety.

Interviewer: Let's talk about something different for a moment. How has the wider funding landscape changed for your members?

Dr Helen Marr: It's been hard. Grant funding from trusts and foundations has been under pressure, and a lot of statutory funding has moved to contracts, which suit larger organisations. Energy costs, salary costs, everything has gone up, and the contracts haven't. We've seen a number of small members close in the last two years. Volunteering has also changed since the pandemic; people are willing, but they want shorter, more flexible roles, and organisations are adapting to that. On the positive side, there's much more interest in lived experience, and several members now have people with convictions on their boards, which is a real change from ten years ago.

Interviewer: Coming back to the partnerships, what about their future?

Dr Helen Marr: This is where I'm most concerned. The message from government is that the fund is time-limited and successful services should be picked up locally. But local budgets are under enormous strain. I haven't heard of a single local authority that has made a firm commitment to continue a service once the fund finishes. And there's the problem that the benefits, fewer people going back to prison, accrue to central government, so the incentive for councils is weak. We've been pushing for some mechanism to share those savings.

Interviewer: Is there anything else we should know?

Dr Helen Marr: Perhaps just that the people matter. The partnerships that have worked well have had consistent people round the table who trust each other. Where the council kept changing who they sent, or sent someone junior who couldn't make decisions, it was really difficult. That's not something a prospectus can fix, but funders could encourage continuity.
"""

if __name__ == "__main__":
    write_vtt(ROOT / "partner-01.vtt", turns_from(PARTNER_01))
    write_srt(ROOT / "stakeholder-02.srt", turns_from(STAKEHOLDER_02))
