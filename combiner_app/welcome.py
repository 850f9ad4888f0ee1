"""The empty window's invitation to drop or open a file."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget


class Welcome(QWidget):
    open_clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        title = QLabel("<h1>COMBINER Studio</h1>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        invite = QLabel("Drop an image, an audio clip or a <b>.cmb</b> file anywhere in this window<br>"
                        "or open one with File → Open (Ctrl+O).")
        invite.setObjectName("dropInvite")
        invite.setAlignment(Qt.AlignmentFlag.AlignCenter)
        invite.setStyleSheet("QLabel#dropInvite { border: 3px dashed #8a9bb0; border-radius: 18px;"
                             " padding: 48px; font-size: 15px; color: #44546a; }")
        button = QPushButton("Open…")
        button.setObjectName("welcomeOpen")
        button.clicked.connect(self.open_clicked)
        note = QLabel("Images of any size are coded with one small neural network per 64×64 patch (a 32×32 "
                      "image with one network for the whole picture); audio with one small network per chunk "
                      "(WAV, FLAC, Ogg, MP3…).")
        note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        note.setStyleSheet("color: #667")
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        lay.addWidget(title)
        lay.addWidget(invite)
        lay.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(note)
        lay.addStretch(2)
