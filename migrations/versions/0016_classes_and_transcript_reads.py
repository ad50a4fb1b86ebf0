"""classes, class members, the teacher role and the transcript-read audit log

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_constraint(op.f('ck_users_role'), 'users', type_='check')
    op.create_check_constraint(op.f('ck_users_role'), 'users', "role IN ('student', 'teacher', 'admin')")
    op.create_table('classes',
    sa.Column('id', sa.Integer(), sa.Identity(always=False), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=True),
    sa.Column('teacher_id', sa.Integer(), nullable=False),
    sa.Column('join_code', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['teacher_id'], ['users.id'], name=op.f('fk_classes_teacher_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_classes')),
    sa.UniqueConstraint('join_code', name='uq_classes_join_code')
    )
    op.create_index('ix_classes_teacher_id', 'classes', ['teacher_id'], unique=False)
    op.create_table('class_members',
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_class_members_class_id_classes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['student_id'], ['users.id'], name=op.f('fk_class_members_student_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('class_id', 'student_id', name=op.f('pk_class_members'))
    )
    op.create_index('ix_class_members_student_id', 'class_members', ['student_id'], unique=False)
    op.create_table('transcript_reads',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=True),
    sa.Column('reader_email', sa.String(length=320), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=True),
    sa.Column('student_email', sa.String(length=320), nullable=False),
    sa.Column('session_id', sa.Uuid(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=True),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['reader_id'], ['users.id'], name=op.f('fk_transcript_reads_reader_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['student_id'], ['users.id'], name=op.f('fk_transcript_reads_student_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transcript_reads'))
    )
    op.create_index('ix_transcript_reads_read_at', 'transcript_reads', ['read_at'], unique=False)
    op.create_index(op.f('ix_transcript_reads_student_id'), 'transcript_reads', ['student_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_transcript_reads_student_id'), table_name='transcript_reads')
    op.drop_index('ix_transcript_reads_read_at', table_name='transcript_reads')
    op.drop_table('transcript_reads')
    op.drop_index('ix_class_members_student_id', table_name='class_members')
    op.drop_table('class_members')
    op.drop_index('ix_classes_teacher_id', table_name='classes')
    op.drop_table('classes')
    op.execute("DELETE FROM users WHERE role = 'teacher'")
    op.drop_constraint(op.f('ck_users_role'), 'users', type_='check')
    op.create_check_constraint(op.f('ck_users_role'), 'users', "role IN ('student', 'admin')")
