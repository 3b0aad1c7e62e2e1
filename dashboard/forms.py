"""The dashboard's forms; Flask-WTF adds the CSRF token to each."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, PasswordField, RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from dashboard.models import WrapTopic

WRAP_TOPICS = [
    (WrapTopic.BUG.value, "Ошибка в программе (баг)"),
    (WrapTopic.HOWTO.value, "Вопрос по работе с OneRPA"),
    (WrapTopic.LICENSING.value, "Лицензии, покупка, обновления"),
    (WrapTopic.OTHER.value, "Другое"),
]
YES_NO = [("yes", "Да"), ("no", "Нет")]
BUG_STATES = [("yes", "Да, подтверждена"), ("no", "Нет, не подтверждена"), ("unknown", "Неясно")]


class LoginForm(FlaskForm):
    username = StringField("Имя пользователя", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Пароль", validators=[DataRequired(), Length(max=256)])


class LogoutForm(FlaskForm):
    """Only the CSRF token: signing out is a POST."""


class WrapupForm(FlaskForm):
    topic = RadioField("Тема звонка", choices=WRAP_TOPICS, validators=[InputRequired()])
    about_onerpa = RadioField(
        "Вопрос касался OneRPA?", choices=YES_NO, validators=[InputRequired()]
    )
    bug_confirmed = RadioField(
        "Грубая ошибка подтверждена?", choices=BUG_STATES, validators=[Optional()]
    )
    notes = TextAreaField("Заметки", validators=[Optional(), Length(max=4000)])

    def validate_bug_confirmed(self, field: RadioField) -> None:
        if self.topic.data == WrapTopic.BUG and not field.data:
            raise ValidationError("Для ошибки укажите, подтвердилась ли она")

    def bug_state(self) -> bool | None:
        """Return the bug answer as stored: True, False or None (not a bug / unclear)."""
        if self.topic.data != WrapTopic.BUG:
            return None
        return {"yes": True, "no": False}.get(self.bug_confirmed.data or "")


class RefusalForm(FlaskForm):
    reason = TextAreaField("Причина отказа", validators=[DataRequired(), Length(max=2000)])
    until = DateField("Действует до (включительно)", validators=[Optional()])


class LiftForm(FlaskForm):
    lift_reason = StringField("Почему снимаем", validators=[DataRequired(), Length(max=2000)])
